/* endpoints.c: field lists as documented by the API (camelCase, exactly as
 * the API spells them; docs/calypso-api.md, "Operations"). Where the API's
 * documentation is silent we follow the safe assumption written down there. */
#include <stddef.h>
#include "endpoints.h"

#define END { NULL, CALYPSO_T_STRING, 0, NULL }

/* String filter (currencyFilter). */
static const calypso_field string_filter[] = {
    { "equals", CALYPSO_T_STRING, 0, NULL },
    { "notEquals", CALYPSO_T_STRING, 0, NULL },
    { "specified", CALYPSO_T_BOOLEAN, 0, NULL },
    { "in", CALYPSO_T_STRING_LIST, 0, NULL },
    { "notIn", CALYPSO_T_STRING_LIST, 0, NULL },
    { "contains", CALYPSO_T_STRING, 0, NULL },
    { "doesNotContain", CALYPSO_T_STRING, 0, NULL },
    END
};

/* Enum filter (transactionStateFilter): no contains variants. The enum is
 * open (REFERENCE §3.1), so values are not checked against a list. */
static const calypso_field enum_filter[] = {
    { "equals", CALYPSO_T_STRING, 0, NULL },
    { "notEquals", CALYPSO_T_STRING, 0, NULL },
    { "specified", CALYPSO_T_BOOLEAN, 0, NULL },
    { "in", CALYPSO_T_STRING_LIST, 0, NULL },
    { "notIn", CALYPSO_T_STRING_LIST, 0, NULL },
    END
};

static const calypso_field create_customer[] = {
    { "email", CALYPSO_T_STRING, 0, NULL },
    { "description", CALYPSO_T_STRING, 0, NULL },
    { "externalId", CALYPSO_T_STRING, 0, NULL },
    END
};

static const calypso_field by_customer_id[] = {
    { "customerId", CALYPSO_T_UUID, 1, NULL },
    END
};

static const calypso_field by_external_id[] = {
    { "externalId", CALYPSO_T_NONEMPTY, 1, NULL },
    END
};

static const calypso_field update_customer[] = {
    { "id", CALYPSO_T_UUID, 1, NULL },
    { "email", CALYPSO_T_STRING, 0, NULL },
    { "description", CALYPSO_T_STRING, 0, NULL },
    { "externalId", CALYPSO_T_STRING, 0, NULL },
    END
};

static const calypso_field get_address[] = {
    { "customerId", CALYPSO_T_UUID, 1, NULL },
    { "currency", CALYPSO_T_NONEMPTY, 1, NULL },
    END
};

static const calypso_field by_transaction_id[] = {
    { "transactionId", CALYPSO_T_UUID, 1, NULL },
    END
};

static const calypso_field find_transactions[] = {
    { "customerId", CALYPSO_T_UUID, 1, NULL },
    { "currencyFilter", CALYPSO_T_OBJECT, 0, string_filter },
    { "transactionStateFilter", CALYPSO_T_OBJECT, 0, enum_filter },
    { "pageNumber", CALYPSO_T_INDEX, 0, NULL },
    { "pageSize", CALYPSO_T_COUNT, 0, NULL },
    { "sort", CALYPSO_T_NONEMPTY, 0, NULL },
    { "properties", CALYPSO_T_NONEMPTY, 0, NULL },
    END
};

const calypso_endpoint calypso_endpoints[] = {
    { "create_customer", "customer/create", 1, CALYPSO_RETURNS_OBJECT, create_customer },
    { "get_customer", "customer/get", 0, CALYPSO_RETURNS_OBJECT, by_customer_id },
    { "get_customers_by_external_id", "customer/external/get", 0, CALYPSO_RETURNS_OBJECT, by_external_id },
    { "update_customer", "customer/update", 1, CALYPSO_RETURNS_OBJECT, update_customer },
    { "block_customer", "customer/block", 1, CALYPSO_RETURNS_OBJECT, by_customer_id },
    { "unblock_customer", "customer/unblock", 1, CALYPSO_RETURNS_OBJECT, by_customer_id },
    /* address/get may issue a new purse, but asking twice yields the same one:
     * it is safe to repeat, so it is not marked as a write. */
    { "get_address", "address/get", 0, CALYPSO_RETURNS_OBJECT, get_address },
    { "get_purses", "purse/get-all", 0, CALYPSO_RETURNS_LIST, by_customer_id },
    { "get_transaction", "transaction/get", 0, CALYPSO_RETURNS_OBJECT, by_transaction_id },
    { "find_transactions", "transaction/find", 0, CALYPSO_RETURNS_OBJECT, find_transactions },
};

const int calypso_endpoint_count = (int)(sizeof calypso_endpoints / sizeof calypso_endpoints[0]);
