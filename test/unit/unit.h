/*
 * unit.h
 *		A tiny unit test harness for the pure C core (src/core).
 *
 *	UNIT_TEST(name) { ... CHECK(cond); CHECK_EQ_INT(a, b); ... }
 *
 * Each UNIT_TEST registers itself at load time, so adding a test file to
 * test/unit is all it takes.  A test passes when none of its checks fail.
 */
#ifndef UNIT_H
#define UNIT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

typedef void (*unit_fn) (void);

extern void unit_register(const char *name, unit_fn fn);
extern void unit_fail(const char *file, int line, const char *what);

#define UNIT_TEST(name) \
	static void name(void); \
	__attribute__((constructor)) static void name##_register(void) \
	{ unit_register(#name, name); } \
	static void name(void)

#define CHECK(cond) \
	do { if (!(cond)) unit_fail(__FILE__, __LINE__, #cond); } while (0)

#define CHECK_EQ_INT(a, b) \
	do { long long _a = (long long) (a), _b = (long long) (b); \
		 if (_a != _b) { char _m[256]; \
			snprintf(_m, sizeof _m, "%s == %s (%lld != %lld)", #a, #b, _a, _b); \
			unit_fail(__FILE__, __LINE__, _m); } } while (0)

#define CHECK_NEAR(a, b, eps) \
	do { double _a = (a), _b = (b); \
		 if (!(fabs(_a - _b) <= (eps))) { char _m[256]; \
			snprintf(_m, sizeof _m, "%s ~ %s (%.12g vs %.12g)", #a, #b, _a, _b); \
			unit_fail(__FILE__, __LINE__, _m); } } while (0)

/* xorshift64: random tests whose failures reproduce */
static inline uint64_t
unit_xorshift(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

#endif							/* UNIT_H */
