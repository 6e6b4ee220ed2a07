"""REST API of the CMDB."""
