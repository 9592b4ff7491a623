-- Devices as a dimension (issue 13): the label the user gave this machine (SLM_DEVICE or the sidebar,
-- default the hostname). The device profile (CPU, cores, RAM, GPU/NPU, OS, providers, versions) is in
-- runs.environment. DuckLake-compatible: no keys, defaults or indexes.
ALTER TABLE runs ADD COLUMN device VARCHAR;
