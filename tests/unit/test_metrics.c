/* Unit tests for the metrics primitives and the exposition writer (core/metrics): histogram
 * buckets cumulate, label values are escaped, special values are spelt as Prometheus reads
 * them, and output larger than the first allocation arrives whole. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/metrics.h"

/* The writer's text, NUL-terminated (malloc'd). */
static char *text_of(ld_mx *w)
{
    assert_true(ld_mx_finish(w));
    char *s = malloc(w->len + 1);
    assert_non_null(s);
    memcpy(s, w->buf, w->len);
    s[w->len] = '\0';
    return s;
}

static ld_mx *writer(void)
{
    ld_mx *w = calloc(1, sizeof *w);
    assert_non_null(w);
    return w;
}

static void done(ld_mx *w, char *s)
{
    free(w->buf);
    free(w);
    free(s);
}

static void test_samples_and_escaping(void **state)
{
    (void)state;
    ld_mx *w = writer();
    ld_mx_family(w, "x_total", "counter", "Things.");
    const char *labels[] = {"db", "a\"b\\c\nd", "peer", "p", NULL};
    ld_mx_sample_u64(w, "x_total", labels, 42);
    ld_mx_sample(w, "y", NULL, INFINITY);
    ld_mx_sample(w, "y", NULL, NAN);
    ld_mx_sample(w, "y", NULL, 0.25);
    ld_mx_sample(w, "y", NULL, 3);
    char *s = text_of(w);
    assert_string_equal(s, "# HELP x_total Things.\n# TYPE x_total counter\n"
                           "x_total{db=\"a\\\"b\\\\c\\nd\",peer=\"p\"} 42\n"
                           "y +Inf\ny NaN\ny 0.25\ny 3\n");
    done(w, s);
}

static void test_histogram_cumulates(void **state)
{
    (void)state;
    ld_hist h = {0};
    ld_hist_observe(&h, &ld_buckets_ops, 1);    /* le 1 */
    ld_hist_observe(&h, &ld_buckets_ops, 3);    /* le 4 */
    ld_hist_observe(&h, &ld_buckets_ops, 4);    /* le 4: bounds are inclusive */
    ld_hist_observe(&h, &ld_buckets_ops, 5000); /* above every bound */
    ld_mx *w = writer();
    const char *labels[] = {"database", "d", NULL};
    ld_mx_hist(w, "c", labels, &ld_buckets_ops, &h);
    char *s = text_of(w);
    assert_string_equal(s, "c_bucket{database=\"d\",le=\"1\"} 1\n"
                           "c_bucket{database=\"d\",le=\"4\"} 3\n"
                           "c_bucket{database=\"d\",le=\"16\"} 3\n"
                           "c_bucket{database=\"d\",le=\"64\"} 3\n"
                           "c_bucket{database=\"d\",le=\"256\"} 3\n"
                           "c_bucket{database=\"d\",le=\"1024\"} 3\n"
                           "c_bucket{database=\"d\",le=\"+Inf\"} 4\n"
                           "c_sum{database=\"d\"} 5008\n"
                           "c_count{database=\"d\"} 4\n");
    done(w, s);
}

static void test_output_past_the_first_allocation(void **state)
{
    (void)state;
    ld_mx *w = writer();
    size_t lines = 20000;
    for (size_t i = 0; i < lines; i++)
        ld_mx_sample_u64(w, "many", NULL, i);
    char *s = text_of(w);
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += *p == '\n';
    assert_int_equal(n, lines);
    assert_non_null(strstr(s, "many 19999\n"));
    assert_true(strlen(s) > 65536); /* past the first allocation: it grew */
    done(w, s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_and_escaping),
        cmocka_unit_test(test_histogram_cumulates),
        cmocka_unit_test(test_output_past_the_first_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
