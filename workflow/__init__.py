"""The Parsl workflow: config, plan, batch apps, DAG driver, event log, resume, CLI."""
