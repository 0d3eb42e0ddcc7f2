"""Process plumbing that both main loops (a node's and `qmulti supervise`) need: sd_notify,
exit statuses, restart backoff, the signal wake-up pipe. Nothing here knows about tasks.
"""
