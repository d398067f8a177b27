"""The demo (SPEC §16): a small shop of services whose real Prometheus metrics a traffic
simulator drives, faults injected on a schedule and on demand, and Debian's Prometheus and
Alertmanager turning them into alerts that reach the gateway's webhook.

- `shop`: the services, their call graph and the request-by-request simulation (pure).
- `faults`: what each fault kind does to a service, and the schedule that injects them.
- `exposition`: the shop's state as Prometheus metrics (prometheus-client).
- `history`: the shop's last hour of normal traffic, generated for Prometheus to start from.
- `shop_server`: `warroom demo shop`, the simulator as a process: `/metrics` and `/faults`.
- `stack`: what `warroom up --demo` starts beside the core stack.
- `cli`: `warroom demo fault` and `warroom demo shop`.
"""
