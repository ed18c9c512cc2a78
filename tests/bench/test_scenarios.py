"""bench/scenarios.py: the renderer's share of streamed pages, from its metrics. No wrk, no servers."""

from __future__ import annotations

from bench.scenarios import streamed_percent


def test_streamed_percent_is_streamed_pages_over_pages_rendered_summed_over_apps() -> None:
    exposition = "\n".join(
        [
            "# TYPE oberon_pages_streamed_total counter",
            'oberon_pages_streamed_total{service="renderer",app="a"} 3.0',
            'oberon_pages_streamed_total{service="renderer",app="b"} 1.0',
            "# TYPE oberon_page_render_duration_seconds histogram",
            'oberon_page_render_duration_seconds_count{service="renderer",app="a"} 10.0',
            'oberon_page_render_duration_seconds_count{service="renderer",app="b"} 6.0',
            'oberon_page_render_duration_seconds_sum{service="renderer",app="b"} 0.5',
        ]
    )
    assert streamed_percent(exposition + "\n") == 25.0
    assert streamed_percent("") is None  # nothing rendered yet


def test_a_renderer_started_without_admin_port_has_its_metrics_on_the_next_port() -> None:
    from bench.servers import admin_url, service_port

    port = service_port()
    assert admin_url(f"http://127.0.0.1:{port}") == f"http://127.0.0.1:{port + 1}"
