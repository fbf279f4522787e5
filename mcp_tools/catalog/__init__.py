"""The tool catalog: every MCP tool declared once (see `base.ToolSpec`), registered in `registry`."""
