"""Monitoring: notifications of deployments, pipelines and runtimes to webhooks, Slack and e-mail."""
