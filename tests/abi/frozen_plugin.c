/* An auth plugin compiled against the frozen ABI 1.0, 1.1 and 1.2 headers (tests/abi/v1.*), never
 * against include/: if a later change breaks older plugins, loading one fails in test_abi. */
#include <string.h>

#include <litedist/auth.h>

static ld_status frozen_create(const ld_host *host, void **out)
{
    (void)host;
    static int instance;
    *out = &instance;
    return LD_OK;
}

/* Knows exactly one key, "frozen", with read access to every database. */
static ld_status frozen_authorize(void *inst, const ld_auth_request *req, int32_t *decision)
{
    (void)inst;
    if (req->api_key_len != 6 || memcmp(req->api_key, "frozen", 6) != 0) {
        *decision = LD_AUTH_UNKNOWN;
        return LD_OK;
    }
    *decision = (req->roles & ~LD_ROLE_READ_DOCUMENT) ? LD_AUTH_DENY : LD_AUTH_ALLOW;
    return LD_OK;
}

static void frozen_destroy(void *inst)
{
    (void)inst;
}

/* Designated: the 1.2 headers add fields (wants, decide) that this 1.0-style plugin leaves zero. */
static const ld_auth_v1 frozen_ops = {.abi_major = LD_ABI_MAJOR,
                                      .abi_minor = LD_ABI_MINOR,
                                      .struct_size = (uint32_t)sizeof(ld_auth_v1),
                                      .create = frozen_create,
                                      .authorize = frozen_authorize,
                                      .destroy = frozen_destroy};
static const ld_plugin_descriptor frozen_descriptor = {LD_ABI_HEADER_INIT(ld_plugin_descriptor),
                                                       LD_PLUGIN_KIND_AUTH, "frozen-1.0", "1.0.0",
                                                       &frozen_ops};

static const ld_plugin_descriptor *frozen_entry(const ld_host *host)
{
    return host->abi_major == LD_ABI_MAJOR ? &frozen_descriptor : NULL;
}

LD_PLUGIN_ENTRY(frozen_entry)
