"""Typed tables from validated Bulk Read CSV pages; pure library, no Airflow.

- :mod:`zoho_crm.tables.schema`: column types from field metadata, schema drift;
- :mod:`zoho_crm.tables.parquet`: typed Parquet beside a page (``write_page_parquet``);
- :mod:`zoho_crm.tables.warehouse`: order-safe merge of an export into ``zoho_crm.<module>`` (``load_export``) and
  its sync state; names checked by :mod:`zoho_crm.tables.names`.

Import from the modules: this package imports none of them, so a Parquet step does not load the database driver.
"""
