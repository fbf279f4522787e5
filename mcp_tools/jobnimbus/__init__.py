"""The JobNimbus API client: pooled HTTP, retries for reads, normalised envelopes, typed errors."""
