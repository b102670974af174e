#!/usr/bin/python3
"""A python3-libtorrent peer for btmount's interop tests and bench.

seed:  lt_peer.py seed  --torrent T --save-path DIR --listen 127.0.0.2:7001
leech: lt_peer.py leech --torrent T|--magnet URI --save-path DIR --listen 127.0.0.3:7002 --peer 127.0.0.1:6881 [--peer ...]
both:  [--tracker URL ...] [--upload-limit BYTES_PER_S]  (the limit applies to local peers too)
       [--paused]  (start paused; SIGUSR1 starts it, so several peers can start at one moment)

Prints one JSON object per line: {"event": "listening", "port": N} once the
listen socket is up, progress lines, and {"event": "done"} when a leech has
every piece (then keeps seeding until killed unless --exit-when-done).
"""
import argparse
import json
import signal
import sys
import time

import libtorrent as lt


def say(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seed", "leech"])
    ap.add_argument("--torrent", help="the .torrent file")
    ap.add_argument("--magnet", help="a magnet URI instead of --torrent (leech: metadata from peers, BEP 9)")
    ap.add_argument("--save-path", required=True)
    ap.add_argument("--listen", required=True, help="ip:port")
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--exit-when-done", action="store_true")
    ap.add_argument("--tracker", action="append", default=[], help="announce to this tracker too")
    ap.add_argument("--upload-limit", type=int, default=0, help="bytes/s for every peer, loopback ones included")
    ap.add_argument("--paused", action="store_true", help="add the torrent paused; SIGUSR1 resumes it")
    ap.add_argument("--plaintext", action="store_true",
                    help="dial in plain BitTorrent, not encrypted first (btmount refuses MSE; libtorrent then retries plainly, usually after 1 s)")
    args = ap.parse_args()

    settings = {
        "listen_interfaces": args.listen,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
        # Nothing limits the loopback unless asked (libtorrent exempts local peers: see below).
        "upload_rate_limit": args.upload_limit,
        "download_rate_limit": 0,
        "unchoke_slots_limit": 16,
        "user_agent": "lt_peer.py",
    }
    if args.plaintext:
        settings["out_enc_policy"] = lt.enc_policy.pe_disabled
    ses = lt.session(settings)
    if args.upload_limit:
        # libtorrent puts loopback and LAN peers in a "local" class that the session's rate limits
        # skip; a capped peer on 127.0.0.x must be capped like a remote one.
        every_ip = lt.ip_filter()
        every_ip.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(every_ip)
    if args.magnet:
        params = lt.parse_magnet_uri(args.magnet)
    else:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.save_path
    if args.mode == "seed":
        params.flags |= lt.torrent_flags.seed_mode
    if args.paused:
        params.flags |= lt.torrent_flags.paused
        params.flags &= ~lt.torrent_flags.auto_managed
    h = ses.add_torrent(params)
    if args.paused:
        signal.signal(signal.SIGUSR1, lambda *_: h.resume())
    for url in args.tracker:
        h.add_tracker({"url": url, "tier": 0})

    port = 0
    for _ in range(200):
        port = ses.listen_port()
        if port:
            break
        time.sleep(0.05)
    say(event="listening", port=port)

    for p in args.peer:
        host, _, pport = p.rpartition(":")
        h.connect_peer((host, int(pport)))

    done_said = False
    last = 0.0
    while True:
        s = h.status()
        now = time.time()
        if args.mode == "leech" and not done_said and s.is_seeding:
            say(event="done", downloaded=s.total_payload_download)
            done_said = True
            if args.exit_when_done:
                return
        if now - last >= 1.0:
            last = now
            say(event="status", progress=s.progress, state=str(s.state), peers=s.num_peers,
                down=s.download_payload_rate, up=s.upload_payload_rate, uploaded=s.total_payload_upload)
            # Static peers: keep asking until connected (they may start later).
            if args.mode == "leech" and s.num_peers == 0:
                for p in args.peer:
                    host, _, pport = p.rpartition(":")
                    h.connect_peer((host, int(pport)))
        for a in ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                say(event="error", message=a.message())
        time.sleep(0.1)


if __name__ == "__main__":
    main()
