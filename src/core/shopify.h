/*
 * shopify.h
 *		Scalars of Shopify payloads, parsed without raising: ids (numbers and
 *		gid://shopify/Type/N strings), ISO 8601 times with an offset, and
 *		plain decimal strings ("199.00").
 *
 * Pure C, no server headers.  Every parser returns false for anything it
 * does not accept, so that a malformed payload becomes a counted skip
 * instead of an error in the middle of a refresh.
 */
#ifndef UPS_SHOPIFY_H
#define UPS_SHOPIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * An id: 1 to 19 decimal digits not above INT64_MAX, or the same digits as
 * the last segment of gid://shopify/<Type>/<digits>, optionally followed by
 * a "?query" (GraphQL adds e.g. ?inventory_item_id=...).  The type is not
 * checked: numeric ids are unique across Shopify's resources.
 */
extern bool ups_shopify_id(const char *s, size_t len, int64_t *out);

/*
 * A time "YYYY-MM-DD(T| )HH:MM[:SS[.frac]](Z|+HH[:MM]|-HH[:MM]|+HHMM|-HHMM)".
 * The offset is required: without one the instant would depend on the
 * session's time zone.  Out: microseconds since 1970-01-01 00:00:00 UTC.
 */
extern bool ups_iso8601(const char *s, size_t len, int64_t *usec_out);

/*
 * A decimal string "[+-]digits[.digits]" (or ".digits") of at most 30
 * digits in all, with no exponent and no blanks: one that numeric input
 * accepts and cannot overflow.
 */
extern bool ups_decimal(const char *s, size_t len);

#endif							/* UPS_SHOPIFY_H */
