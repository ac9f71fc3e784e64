/* endpoints.h: the ONE table of Customer Purse operations. Methods, validation,
 * response shape and the Lua-visible `purse.operations` are all derived from it. */
#ifndef CALYPSO_ENDPOINTS_H
#define CALYPSO_ENDPOINTS_H

typedef enum calypso_type {
    CALYPSO_T_STRING,        /* any UTF-8 string */
    CALYPSO_T_NONEMPTY,      /* UTF-8 string with at least one byte */
    CALYPSO_T_UUID,          /* 8-4-4-4-12 hex digits */
    CALYPSO_T_INDEX,         /* integer >= 0 */
    CALYPSO_T_COUNT,         /* integer >= 1 */
    CALYPSO_T_BOOLEAN,
    CALYPSO_T_STRING_LIST,   /* non-empty sequence of strings */
    CALYPSO_T_OBJECT         /* nested table checked against `fields` */
} calypso_type;

typedef struct calypso_field {
    const char *name;
    calypso_type type;
    int required;
    const struct calypso_field *fields;   /* for CALYPSO_T_OBJECT; NULL-name terminated */
} calypso_field;

typedef enum calypso_shape {
    CALYPSO_RETURNS_OBJECT,   /* a JSON object, returned as a table */
    CALYPSO_RETURNS_LIST      /* a bare array, or an object wrapping one: returned as a sequence */
} calypso_shape;

typedef struct calypso_endpoint {
    const char *name;     /* Lua method name */
    const char *path;     /* below /api/v1/customer-purse/ */
    int writes;           /* changes server state (matters for retries) */
    calypso_shape shape;
    const calypso_field *fields;
} calypso_endpoint;

#define CALYPSO_API_PREFIX "/api/v1/customer-purse/"

extern const calypso_endpoint calypso_endpoints[];
extern const int calypso_endpoint_count;

#endif
