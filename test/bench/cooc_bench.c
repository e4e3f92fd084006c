/*
 * cooc_bench.c
 *		The counting core (src/core/cooccur.c) on its own, as a plain program:
 *		CPU time of collecting the lines and of counting them, and the core's
 *		peak memory (every ups_alloc is tracked), on one core.  Also the
 *		parallel shape: two halves made into partial states (what two
 *		workers do), combined and finished (what the leader does).
 *
 *	cooc_bench [-r runs] fimi FILE		one basket per line, ids separated by
 *										spaces (FIMI format, test/data/retail.dat)
 *	cooc_bench [-r runs] lines FILE|-	gen_orders' "lines" output: order id and
 *										product id are the first two columns
 */
#define _POSIX_C_SOURCE 200809L	/* clock_gettime */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cooccur.h"
#include "ups_host.h"

/* Memory: every block carries its size, so the harness knows what is live. */
static size_t mem_live,
			mem_peak;

typedef struct Block
{
	size_t		size;
	size_t		pad;			/* keeps the payload 16-byte aligned */
} Block;

void *
ups_alloc(size_t size)
{
	Block	   *b = malloc(sizeof(Block) + size);

	if (b == NULL)
		abort();
	b->size = size;
	mem_live += size;
	if (mem_live > mem_peak)
		mem_peak = mem_live;
	/* as the server's ups_alloc does (src/host_glue.c) */
	ups_advise_huge(b + 1, size);
	return b + 1;
}

void *
ups_alloc0(size_t size)
{
	void	   *p = ups_alloc(size);

	memset(p, 0, size);
	return p;
}

void *
ups_realloc(void *ptr, size_t size)
{
	Block	   *b = (Block *) ptr - 1;
	size_t		old = b->size;

	b = realloc(b, sizeof(Block) + size);
	if (b == NULL)
		abort();
	b->size = size;
	mem_live = mem_live - old + size;
	if (mem_live > mem_peak)
		mem_peak = mem_live;
	ups_advise_huge(b + 1, size);
	return b + 1;
}

void
ups_free(void *ptr)
{
	if (ptr)
	{
		Block	   *b = (Block *) ptr - 1;

		mem_live -= b->size;
		free(b);
	}
}

void
ups_check_interrupts(void)
{
}

static double
cpu_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static CoocLine *input;
static size_t ninput,
			capinput;

static void
add_input(int64_t order, int64_t product)
{
	if (ninput == capinput)
	{
		capinput = capinput ? capinput * 2 : 1 << 20;
		input = realloc(input, capinput * sizeof(CoocLine));
		if (input == NULL)
			abort();
	}
	input[ninput].order_key = order;
	input[ninput++].product_id = product;
}

static void
read_input(const char *format, FILE *f)
{
	static char buf[1 << 20];
	int64_t		basket = 0;

	while (fgets(buf, sizeof(buf), f))
	{
		char	   *s = buf,
				   *end;

		if (strcmp(format, "fimi") == 0)
		{
			basket++;
			for (;;)
			{
				long long	id = strtoll(s, &end, 10);

				if (end == s)
					break;
				add_input(basket, id);
				s = end;
			}
		}
		else
		{
			long long	order = strtoll(s, &end, 10);
			long long	product = strtoll(end, NULL, 10);

			add_input(order, product);
		}
	}
}

static void
fill(CoocLines *l, size_t from, size_t to)
{
	size_t		i;

	cooc_lines_init(l);
	for (i = from; i < to; i++)
		cooc_lines_add(l, input[i].order_key, input[i].product_id);
}

int
main(int argc, char **argv)
{
	int			runs = 5,
				r,
				argi = 1;
	double		t_add[64],
				t_count[64],
				t_half[64],
				t_combine[64];
	size_t		peak = 0,
				half;
	int			counted = 0;
	CoocCounts	c;
	FILE	   *f;

	if (argc > 2 && strcmp(argv[1], "-r") == 0)
	{
		runs = atoi(argv[2]);
		argi = 3;
	}
	if (runs < 1 || runs > 64 || argc != argi + 2 ||
		(strcmp(argv[argi], "fimi") != 0 && strcmp(argv[argi], "lines") != 0))
	{
		fprintf(stderr, "usage: cooc_bench [-r runs] fimi|lines FILE|-\n");
		return 2;
	}
	f = strcmp(argv[argi + 1], "-") == 0 ? stdin : fopen(argv[argi + 1], "r");
	if (f == NULL)
	{
		perror(argv[argi + 1]);
		return 2;
	}
	read_input(argv[argi], f);

	for (r = 0; r < runs; r++)
	{
		CoocLines	l,
					l1,
					l2;
		CoocPartial p1,
					p2,
					both;
		double		t0,
					t1,
					t2;

		mem_live = mem_peak = 0;
		t0 = cpu_seconds();
		fill(&l, 0, ninput);
		t1 = cpu_seconds();
		if (cooc_count(&l, 100, &c) != NULL)
			abort();
		t2 = cpu_seconds();
		t_add[r] = t1 - t0;
		t_count[r] = t2 - t1;
		peak = mem_peak;
		ups_free(l.lines);

		/* two workers: a half each, as a parallel scan would split the table */
		half = ninput / 2;
		fill(&l1, 0, half);
		fill(&l2, half, ninput);
		t0 = cpu_seconds();
		if (cooc_partial_count(&l1, 100, COOC_PARTIAL_AUTO, &p1) != NULL)
			abort();
		t1 = cpu_seconds();
		if (cooc_partial_count(&l2, 100, COOC_PARTIAL_AUTO, &p2) != NULL)
			abort();
		t2 = cpu_seconds();
		t_half[r] = (t1 - t0) > (t2 - t1) ? (t1 - t0) : (t2 - t1);
		counted = p1.counted + p2.counted;
		t0 = cpu_seconds();
		if (cooc_partial_combine(&both, &p1, &p2, 100) != NULL ||
			cooc_partial_finish(&both, 100) != NULL)
			abort();
		t_combine[r] = cpu_seconds() - t0;
		if (both.counts.npairs != c.npairs || both.counts.orders != c.orders ||
			memcmp(both.counts.pairs, c.pairs, c.npairs * sizeof(CoocEntry)) != 0)
		{
			fprintf(stderr, "combined partial states differ from the count: %zu/%zu pairs, %lld/%lld orders\n", both.counts.npairs, c.npairs, (long long) both.counts.orders, (long long) c.orders);
			return 1;
		}
		cooc_partial_free(&p1);
		cooc_partial_free(&p2);
		cooc_partial_free(&both);
		ups_free(l1.lines);
		ups_free(l2.lines);
		if (r + 1 < runs)
			cooc_counts_free(&c);
	}
	{
		double		add = median(t_add, runs),
					count = median(t_count, runs);

		printf("input: %zu lines, %lld orders, %u products, %zu pairs (max_basket 100)\n",
			   ninput, (long long) c.orders, c.nitems, c.npairs);
		printf("collect lines (cooc_lines_add): %8.1f ms  (%.1f ns per line)\n",
			   add * 1e3, add * 1e9 / (double) ninput);
		printf("count (cooc_count):             %8.1f ms  (%.1f ns per line)\n",
			   count * 1e3, count * 1e9 / (double) ninput);
		printf("two workers: larger half %.1f ms, combine %.1f ms (%d of 2 halves carried pair counts, the others their orders only)\n",
			   median(t_half, runs) * 1e3, median(t_combine, runs) * 1e3, counted);
		printf("peak memory of the core (lines + count + result): %.1f MB (%.1f bytes per line)\n",
			   peak / 1048576.0, (double) peak / (double) ninput);
		printf("cpu time, median of %d runs, one core\n", runs);
	}
	cooc_counts_free(&c);
	free(input);
	return 0;
}
