"""The length sweep: its plan (per model prompts, context and engine), prompts of exact token counts (tokens), the TTFT/TPOT fit and time to notes (fit), and its charts."""
