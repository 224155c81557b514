/* Test fixture missing-fn.so: an auth plugin whose required authorize is NULL. The loader must
 * refuse it at load, not crash at the first request. */
#include <litedist/auth.h>

static int instance;

static ld_status fx_create(const ld_host *host, void **out)
{
    *out = &instance;
    return LD_OK;
}

static void fx_destroy(void *inst) {}

static const ld_auth_v1 fx_ops = {LD_ABI_HEADER_INIT(ld_auth_v1), .create = fx_create,
                                  .authorize = NULL, .destroy = fx_destroy};

static const ld_plugin_descriptor fx_descriptor = {
    LD_ABI_HEADER_INIT(ld_plugin_descriptor), LD_PLUGIN_KIND_AUTH, "missing-fn", "0.0.0", &fx_ops};

static const ld_plugin_descriptor *fx_entry(const ld_host *host)
{
    return &fx_descriptor;
}

LD_PLUGIN_ENTRY(fx_entry)
