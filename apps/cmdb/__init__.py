"""The CMDB: configuration items, their relations and change history."""
