"""The export pipeline: records, Params, page steps, storage and the DAG factory that wires them."""
