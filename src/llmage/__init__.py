"""llmage: one billed API in front of many generation models."""
