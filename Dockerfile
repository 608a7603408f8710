# The image of docker-compose.yaml: the official Airflow image plus this project's pinned requirements.
# The tag's Airflow version must equal the apache-airflow pin in requirements.txt (tests/test_compose.py checks it).
# DAGs, plugins and include/ are mounted at run time, not copied.
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt constraints.txt /opt/requirements/
RUN pip install --no-cache-dir -r /opt/requirements/requirements.txt -c /opt/requirements/constraints.txt
