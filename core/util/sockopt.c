/* Socket options (sockopt.h): TCP_NODELAY on a socket, and on a listener so that the sockets it
 * accepts inherit it. */
#include "sockopt.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

bool ld_sock_nodelay(evutil_socket_t fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
}

void ld_listener_nodelay(struct evhttp_bound_socket *listener)
{
    /* Accepted sockets inherit TCP_NODELAY from the listener (Linux); the bufferevent callback
     * runs before evhttp has the socket, so this is the one place to set it. */
    if (!ld_sock_nodelay(evhttp_bound_socket_get_fd(listener)))
        ld_log_warn("cannot turn Nagle off on the listener (%s): responses may wait for "
                    "delayed ACKs",
                    strerror(errno));
}
