"""Load and failover runs against many web hosts behind HAProxy (issue 15 parts 5-7): `python -m bench.load --help`.

- stack.py   starts the hosts on loopback addresses: web hosts (the Procfile's `web:` line) on 127.0.0.2-4, the
             Celery worker + beat "host" on 127.0.0.5, HAProxy in front on 127.0.0.1:8400, PostgreSQL (database
             `jnload`), Redis under a namespace of the run, and the sandbox JobNimbus (two instances, two API keys
             each) whose webhooks go through the balancer.
- locustfile.py  the load: a constant total arrival rate over phases, Zipf reads, ~5 % writes, stale-read checks.
- __main__.py    the command line: one run (mode, phases, failover), its report.
"""
