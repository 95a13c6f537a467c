"""The operators' console: jobs, stage timings, dead letters, replay, health (issue 25)."""
