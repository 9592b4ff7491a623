"""The conditions a run was measured under: the device and its power state (environment), other programs' load (noise), energy, paired comparisons, and those as lines of text (lines)."""
