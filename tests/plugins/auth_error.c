/* Test fixture auth-error.so: a valid auth plugin whose authorize always fails with LD_IO. The
 * host must fail the request closed (503) and never ask a later plugin. */
#include <litedist/auth.h>

static int instance;

static ld_status fx_create(const ld_host *host, void **out)
{
    *out = &instance;
    return LD_OK;
}

static ld_status fx_authorize(void *inst, const ld_auth_request *req, int32_t *decision)
{
    /* Set a decision anyway: the host must ignore it because the status is not LD_OK. */
    *decision = LD_AUTH_ALLOW;
    return LD_IO;
}

static void fx_destroy(void *inst) {}

static const ld_auth_v1 fx_ops = {LD_ABI_HEADER_INIT(ld_auth_v1), .create = fx_create,
                                  .authorize = fx_authorize, .destroy = fx_destroy};

static const ld_plugin_descriptor fx_descriptor = {
    LD_ABI_HEADER_INIT(ld_plugin_descriptor), LD_PLUGIN_KIND_AUTH, "auth-error", "0.0.0", &fx_ops};

static const ld_plugin_descriptor *fx_entry(const ld_host *host)
{
    return &fx_descriptor;
}

LD_PLUGIN_ENTRY(fx_entry)
