"""A local JobNimbus stand-in: a separate WSGI service over an in-memory, seeded store (no Django ORM, and nothing
imported from mcp_tools, cacheops or dashboard).

Modules: `seed` (deterministic roofing-company data), `resources` (one declaration per JobNimbus resource),
`query` (filter/sort/page/fields), `store` (records and write rules), `access` (keys and access profiles),
`faults`, `webhooks`, `app` (routing: /api1 and the /__sandbox/ control API), `server` (`start_sandbox()`),
and the `run_sandbox` management command.

Choices where JobNimbus is silent:
- Lists return active records only; a filter with any clause on `is_active` decides instead (so
  `{"must":[{"term":{"is_active":false}}]}` lists deleted ones). GET by id returns deleted records too.
- Missing required fields and unknown workflow/status names answer 400 `{"message": ...}` naming the field
  (JobNimbus answers 500 on some creates).
- The built-in `sandboxsaleskey0001` sees the contacts and jobs whose `sales_rep` is the first user (Dana Reyes) and
  the records linked to them; see `sandbox.access`.
- Creating, deleting or restoring a child (task, file, note, ...) moves its contact's/job's `date_updated` and, for
  tasks and files, `task_count`/`attachment_count`; no webhook is sent for that parent bump.
"""
