/* Test fixture auth-fail-create.so: a valid auth plugin whose create refuses its configuration
 * with LD_INVALID. The server must not start. */
#include <litedist/auth.h>

static ld_status fx_create(const ld_host *host, void **out)
{
    *out = NULL;
    host->log(host, LD_LOG_ERROR, "auth-fail-create: refusing the configuration (test fixture)");
    return LD_INVALID;
}

static ld_status fx_authorize(void *inst, const ld_auth_request *req, int32_t *decision)
{
    *decision = LD_AUTH_UNKNOWN;
    return LD_OK;
}

static void fx_destroy(void *inst) {}

static const ld_auth_v1 fx_ops = {LD_ABI_HEADER_INIT(ld_auth_v1), .create = fx_create,
                                  .authorize = fx_authorize, .destroy = fx_destroy};

static const ld_plugin_descriptor fx_descriptor = {LD_ABI_HEADER_INIT(ld_plugin_descriptor),
                                                   LD_PLUGIN_KIND_AUTH, "auth-fail-create", "0.0.0",
                                                   &fx_ops};

static const ld_plugin_descriptor *fx_entry(const ld_host *host)
{
    return &fx_descriptor;
}

LD_PLUGIN_ENTRY(fx_entry)
