"""The gateway: the site's only entrance — routing table, authentication, trusted context, proxying."""
