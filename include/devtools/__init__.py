"""Development tooling that never ships: the Zoho simulator, the Airflow stack harness, the demo, make airflow."""
