"""The harness's own start-up rules (conftest.py): a node whose port another process took between
free_port() and its bind is moved to a new port, and a /health answer from that other process is
not taken for the node's."""

import http.server
import threading

from conftest import JsonHandler


class Impostor(JsonHandler):
    """Answers every GET as a healthy litedistd would."""

    def do_GET(self):
        self.answer(200, {"Status": "Healthy", "NodeId": "test-node"})


def test_a_node_whose_port_was_taken_moves_to_another(make_node):
    srv = http.server.HTTPServer(("127.0.0.1", 0), Impostor)
    taken = srv.server_address[1]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        n = make_node(start=False)
        n.port = taken
        n.config["Node"]["Port"] = taken
        n.write_config()
        n.start(port_retries=2)
        assert n.port != taken and n.config["Node"]["Port"] == n.port
        assert "Address already in use" in n.log_text()
        assert n.running() and n.node_id() == "test-node"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)
