# A real SMTP server for sentry's tests: Debian's aiosmtpd (python3-aiosmtpd)
# on a listening socket handed over as fd 3, with STARTTLS and AUTH when
# asked, writing each message it accepts into OUTDIR as NNNNN.eml (with the
# envelope in X-Envelope-* lines first). SMTPD_IMPLICIT_TLS=1 speaks TLS
# from the first byte (submissions, port 465: the socket is wrapped, no
# STARTTLS). SMTPD_FAIL_FIRST=N answers the first N messages with a
# temporary failure (451), to test retries.
import asyncio
import os
import socket
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

outdir = sys.argv[1]
cert = os.environ.get("SMTPD_CERT", "")
key = os.environ.get("SMTPD_KEY", "")
user = os.environ.get("SMTPD_USER", "")
password = os.environ.get("SMTPD_PASSWORD", "")
fail_first = int(os.environ.get("SMTPD_FAIL_FIRST", "0"))
implicit = os.environ.get("SMTPD_IMPLICIT_TLS", "") == "1"


class Handler:
    def __init__(self):
        self.n = 0
        self.refused = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refused < fail_first:
            self.refused += 1
            return "451 4.3.0 try again later (test)"
        self.n += 1
        tmp = os.path.join(outdir, ".%05d.tmp" % self.n)
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-From: " + envelope.mail_from.encode() + b"\r\n")
            f.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            ad = getattr(session, "auth_data", None)
            login = ad.login if isinstance(ad, LoginPassword) else b""
            f.write(b"X-Auth-Login: " + login + b"\r\n")
            over_tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
            f.write(b"X-TLS: " + (b"yes" if over_tls else b"no") + b"\r\n")
            f.write(b"X-TLS-Implicit: " + (b"yes" if implicit else b"no") + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(outdir, "%05d.eml" % self.n))
        return "250 2.0.0 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
          and auth_data.password.decode() == password)
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


async def main():
    ctx = None
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
    handler = Handler()
    if implicit:
        # TLS is the transport's: aiosmtpd offers no STARTTLS, and its
        # AUTH-needs-TLS check only knows STARTTLS (the connection is
        # encrypted from its first byte all the same).
        kwargs = dict(hostname="localhost")
        if user:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    else:
        kwargs = dict(hostname="localhost", tls_context=ctx, require_starttls=ctx is not None)
        if user:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=ctx is not None)
    sock = socket.socket(fileno=3)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: SMTP(handler, **kwargs), sock=sock, ssl=ctx if implicit else None)
    async with srv:
        await srv.serve_forever()


asyncio.run(main())
