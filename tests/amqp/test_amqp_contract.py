"""The broker contract suite (tests/worker/test_broker_contract*.py) on amqp://: every
rule RabbitMQ can keep, run unchanged. The rules it keeps differently have their own
tests in test_amqp_leases.py, which says why each is left out here. Two of them only
because RabbitMQ's counts are eventually consistent (an ack is applied a moment after it
is sent, a delayed message is briefly between ladder queues), so a snapshot taken at once
may lag: test_due_eta_goes_to_the_tail and test_ack_nack_dead_letter_twice_act_once have
polling versions there, and test_eta_waits_in_the_broker is left to
test_long_delays_wait_in_the_ladder (its 0.3 s eta can pass a quorum-queue hop before
the snapshot on a loaded machine)."""

from __future__ import annotations

import pytest
from amqp_support import load_test_module

pytestmark = pytest.mark.timeout(90)

_c = load_test_module("test_broker_contract")
_f = load_test_module("test_broker_contract_fencing")

test_fifo_within_a_queue = _c.test_fifo_within_a_queue
test_queues_are_tried_in_order = _c.test_queues_are_tried_in_order
test_limit_is_respected = _c.test_limit_is_respected
test_claim_with_timeout_returns_empty_after_waiting = (
    _c.test_claim_with_timeout_returns_empty_after_waiting)
test_blocking_claim_wakes_when_another_instance_publishes = (
    _c.test_blocking_claim_wakes_when_another_instance_publishes)
test_blocking_claim_returns_at_the_eta = _c.test_blocking_claim_returns_at_the_eta
test_nack_returns_to_the_head_in_order = _c.test_nack_returns_to_the_head_in_order
test_release_consumer_gives_back_only_its_own = _c.test_release_consumer_gives_back_only_its_own
test_release_node_gives_back_everything_in_order = (
    _c.test_release_node_gives_back_everything_in_order)
test_unregister_forgets_the_node = _c.test_unregister_forgets_the_node
test_begin_counts_and_dead_letters_at_max_deliveries = (
    _c.test_begin_counts_and_dead_letters_at_max_deliveries)
test_ack_removes_and_ack_of_a_non_leased_message_is_a_no_op = (
    _c.test_ack_removes_and_ack_of_a_non_leased_message_is_a_no_op)
test_dead_letter = _c.test_dead_letter
test_dead_letters_oldest_first_with_limit = _c.test_dead_letters_oldest_first_with_limit
test_reschedule_replaces_the_message = _c.test_reschedule_replaces_the_message
test_stats_counts_every_state = _c.test_stats_counts_every_state
test_purge_deletes_only_ready_messages_of_one_queue = (
    _c.test_purge_deletes_only_ready_messages_of_one_queue)

test_reschedule_twice_makes_one_retry = _f.test_reschedule_twice_makes_one_retry
