"""REST API of the pipelines app: definitions, runs, task runs and logs, configs, branch rules, webhooks."""
