/* Test fixture short-struct.so: an auth plugin whose operations table declares struct_size 16,
 * i.e. only the header, so every required function lies beyond it. The loader must refuse it. */
#include <litedist/auth.h>

static int instance;

static ld_status fx_create(const ld_host *host, void **out)
{
    *out = &instance;
    return LD_OK;
}

static ld_status fx_authorize(void *inst, const ld_auth_request *req, int32_t *decision)
{
    *decision = LD_AUTH_UNKNOWN;
    return LD_OK;
}

static void fx_destroy(void *inst) {}

/* The pointers are set, but struct_size says they are absent: the loader must believe the size. */
static const ld_auth_v1 fx_ops = {
    LD_ABI_MAJOR,         LD_ABI_MINOR, 16, 0, .create = fx_create, .authorize = fx_authorize,
    .destroy = fx_destroy};

static const ld_plugin_descriptor fx_descriptor = {LD_ABI_HEADER_INIT(ld_plugin_descriptor),
                                                   LD_PLUGIN_KIND_AUTH, "short-struct", "0.0.0",
                                                   &fx_ops};

static const ld_plugin_descriptor *fx_entry(const ld_host *host)
{
    return &fx_descriptor;
}

LD_PLUGIN_ENTRY(fx_entry)
