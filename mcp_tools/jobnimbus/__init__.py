"""The JobNimbus API client: pooled HTTP, retries for reads, normalised envelopes, typed errors.

Use `mcp_tools.jobnimbus.client.JobNimbusClient`; build list filters with `mcp_tools.jobnimbus.filters`;
catch the classes in `mcp_tools.jobnimbus.errors`; read upstream call counts from `mcp_tools.jobnimbus.stats`.
"""
