"""A tiny load-balancer controller, as a cloud or MetalLB would be: every Service of type
LoadBalancer in every fleet cluster gets an ingress IP from that cluster's loopback pool."""
import os
import time


def _clients(fleet):
    from kubernetes import client, config  # noqa: PLC0415

    apis = {}
    for c in fleet.state["clusters"]:
        kc = os.path.join(c["dir"], "kubeconfig-fleet-lb")
        apis[c["name"]] = (c, client.CoreV1Api(config.new_client_from_config(config_file=kc)))
    return apis


def reconcile_once(c, api):
    """Give every LoadBalancer Service without an ingress IP the next free pool address."""
    services = api.list_service_for_all_namespaces(_request_timeout=5).items
    used = set()
    pending = []
    for svc in services:
        if svc.spec.type != "LoadBalancer":
            continue
        ingress = (svc.status.load_balancer and svc.status.load_balancer.ingress) or []
        if ingress:
            used.update(i.ip for i in ingress if i.ip)
        else:
            pending.append(svc)
    assigned = 0
    for svc in pending:
        free = [ip for ip in c["network"]["lb_pool"] if ip not in used]
        if not free:
            print("[lb] %s: pool exhausted for %s/%s" % (c["name"], svc.metadata.namespace, svc.metadata.name),
                  flush=True)
            continue
        ip = free[0]
        api.patch_namespaced_service_status(
            svc.metadata.name, svc.metadata.namespace,
            {"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}, _request_timeout=5)
        used.add(ip)
        assigned += 1
        print("[lb] %s: %s/%s -> %s" % (c["name"], svc.metadata.namespace, svc.metadata.name, ip), flush=True)
    return assigned


def run(fleet, interval=1.0):
    apis = _clients(fleet)
    failing = {}
    while True:
        for name, (c, api) in apis.items():
            try:
                reconcile_once(c, api)
                if failing.pop(name, None):
                    print("[lb] %s: reachable again" % name, flush=True)
            except Exception as e:  # noqa: BLE001 - a stopped API server must not stop the loop
                if name not in failing:
                    print("[lb] %s: %s" % (name, str(e).splitlines()[0][:200]), flush=True)
                failing[name] = True
        time.sleep(interval)
