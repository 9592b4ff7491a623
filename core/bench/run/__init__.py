"""The run: inputs, the order of candidates, one level's schedule, the runner, resume, persistence, progress and the background job."""
