"""Loopback facts every layer may ask: is anything listening on a port?"""
import socket


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
