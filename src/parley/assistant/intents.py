"""What a shopper's message can be about.

The values are stored (conversation rows, a store's labelled CSVs), so they never change;
the first 27 are the Bitext customer-support intents, so a store's data labelled with that
widely used scheme trains the classifier as it is.
"""

from __future__ import annotations

from enum import StrEnum


class Intent(StrEnum):
    """The intent of one inbound message."""

    CANCEL_ORDER = "cancel_order"
    CHANGE_ORDER = "change_order"
    CHANGE_SHIPPING_ADDRESS = "change_shipping_address"
    CHECK_CANCELLATION_FEE = "check_cancellation_fee"
    CHECK_INVOICE = "check_invoice"
    CHECK_PAYMENT_METHODS = "check_payment_methods"
    CHECK_REFUND_POLICY = "check_refund_policy"
    COMPLAINT = "complaint"
    CONTACT_CUSTOMER_SERVICE = "contact_customer_service"
    CONTACT_HUMAN_AGENT = "contact_human_agent"
    CREATE_ACCOUNT = "create_account"
    DELETE_ACCOUNT = "delete_account"
    DELIVERY_OPTIONS = "delivery_options"
    DELIVERY_PERIOD = "delivery_period"
    EDIT_ACCOUNT = "edit_account"
    GET_INVOICE = "get_invoice"
    GET_REFUND = "get_refund"
    NEWSLETTER_SUBSCRIPTION = "newsletter_subscription"
    PAYMENT_ISSUE = "payment_issue"
    PLACE_ORDER = "place_order"
    RECOVER_PASSWORD = "recover_password"  # noqa: S105 - an intent name, not a password
    REGISTRATION_PROBLEMS = "registration_problems"
    REVIEW = "review"
    SET_UP_SHIPPING_ADDRESS = "set_up_shipping_address"
    SWITCH_ACCOUNT = "switch_account"
    TRACK_ORDER = "track_order"
    TRACK_REFUND = "track_refund"
    PRODUCT_QUESTION = "product_question"
    SIZING = "sizing"
    RETURN_ITEM = "return_item"
    LOYALTY_BALANCE = "loyalty_balance"
    GREETING = "greeting"
    THANKS = "thanks"
    OUT_OF_SCOPE = "out_of_scope"
