"""The MCP wire: JSON-RPC envelopes, protocol eras, method handlers and error mapping.

`mcp_tools.views` feeds it HTTP requests; it knows tools only through `mcp_tools.catalog.registry`.
"""
