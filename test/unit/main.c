/*
 * main.c
 *		Runs every registered unit test; prints "N passed, M failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "ups_host.h"

#define MAX_TESTS 1024

static struct
{
	const char *name;
	unit_fn		fn;
}			tests[MAX_TESTS];
static int	ntests;
static int	current_failures;

void
unit_register(const char *name, unit_fn fn)
{
	if (ntests < MAX_TESTS)
	{
		tests[ntests].name = name;
		tests[ntests].fn = fn;
		ntests++;
	}
}

void
unit_fail(const char *file, int line, const char *what)
{
	if (current_failures++ < 5)
		printf("    %s:%d: check failed: %s\n", file, line, what);
}

/* The host side of ups_host.h for a plain program. */
void *
ups_alloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
ups_alloc0(size_t size)
{
	void	   *p = calloc(1, size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
ups_realloc(void *ptr, size_t size)
{
	void	   *p = realloc(ptr, size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void
ups_free(void *ptr)
{
	free(ptr);
}

void
ups_check_interrupts(void)
{
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int
main(int argc, char **argv)
{
	int			passed = 0,
				failed = 0,
				i;

	/* constructors run in link order; sort for a stable report */
	qsort(tests, ntests, sizeof(tests[0]), by_name);
	for (i = 0; i < ntests; i++)
	{
		if (argc > 1 && strstr(tests[i].name, argv[1]) == NULL)
			continue;
		current_failures = 0;
		tests[i].fn();
		if (current_failures == 0)
		{
			passed++;
			printf("ok   %s\n", tests[i].name);
		}
		else
		{
			failed++;
			printf("FAIL %s\n", tests[i].name);
		}
	}
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
