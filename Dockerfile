# The image of docker-compose.yaml: the official Airflow image plus this project's pinned requirements.
# The tag's Airflow version must equal the apache-airflow pin in requirements.txt (tests/test_compose.py checks it).
# DAGs, plugins and include/ are mounted at run time (plugins/zoho_crm is copied only to install the provider).
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt constraints.txt /opt/requirements/
RUN pip install --no-cache-dir -r /opt/requirements/requirements.txt -c /opt/requirements/constraints.txt

# The provider, installed editable as `make` does (pip install --no-deps -e .), from /opt/airflow: its code is
# /opt/airflow/plugins/zoho_crm, where docker-compose.yaml mounts ./plugins at run time, so the mounted code is the
# installed provider's. Airflow registers the zoho_crm connection type only from an installed provider.
COPY --chown=airflow:0 pyproject.toml /opt/airflow/
COPY --chown=airflow:0 plugins/zoho_crm /opt/airflow/plugins/zoho_crm
RUN pip install --no-cache-dir --no-deps -e /opt/airflow && rm -rf /opt/airflow/plugins/*.egg-info
