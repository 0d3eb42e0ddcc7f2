"""Process plumbing that both main loops (a node's and `qmulti supervise`) need: sd_notify,
exit statuses, backoff, the signal wake-up pipe, `%`-expansion and the node environment.
Nothing here knows about tasks.
"""
