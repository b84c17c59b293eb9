"""Real-world shapes of messages whose ENVELOPE, BODYSTRUCTURE and part sections
servers have answered differently: display names in comments (also in forwarded
messages), empty parts, a multipart that never closes, Content-Types that do not parse,
digests, a message/rfc822 at the top, an Outlook-style multipart (folded parameters,
encoded words in addresses; not in parameters, nor RFC 2231 parameters, which Letterbox
decodes, as RFC 9051 7.5.2 asks of the latter, and Dovecot 2.3 passes through), quoted-printable and base64 parts, a last line
without a line end. test_imap_mime_dovecot.py compares Letterbox with Dovecot on them."""


def crlf(s: str) -> bytes:
    return s.replace("\n", "\r\n").encode()


COMMENT_NAMES = crlf("""\
Date: Wed, 3 Mar 2004 10:11:12 +0100
From: john@example.com (John Doe)
Sender: list-bounces@lists.example.org (Example List)
Reply-To: reply@example.org (=?ISO-8859-1?Q?J=F6rg?=)
To: jane@example.net (Jane (the boss) Roe), "Quoted" <q@example.net> (not a name),
 plain@example.net, other@example.net ()
Cc: (leading) cc@example.net, odd(inner)@example.net
Bcc: b@example.net (one) (two)
Subject: names from comments
Message-ID: <c1@example.com>

Names in comments, as old mailers and list archives write them.
""")

FORWARD = crlf("""\
Date: Thu, 4 Mar 2004 09:00:00 +0000
From: "Alice" <alice@example.com>
To: bob@example.com (Bob B.)
Subject: Fwd: the report
Message-ID: <fwd1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer-b"

This is a multi-part message in MIME format.
--outer-b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

See the forwarded message below. Gr=C3=BC=C3=9Fe,
Alice

--outer-b
Content-Type: message/rfc822; name="the report.eml"
Content-Disposition: attachment; filename="the report.eml"

Date: Wed, 3 Mar 2004 18:30:00 -0500
From: carol@example.org (Carol Q. Public)
To: alice@example.com (Alice)
Subject: the report
Message-ID: <inner1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inner-b"

--inner-b
Content-Type: multipart/alternative; boundary="alt-b"

--alt-b
Content-Type: text/plain; charset=us-ascii

Here is the report.

--alt-b
Content-Type: text/html; charset=us-ascii

<p>Here is the <b>report</b>.</p>

--alt-b--

--inner-b
Content-Type: application/pdf; name="report16.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="report16.pdf"

JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl
Y29kZT4+CnN0cmVhbQp4nDPQM1Qo5ypUMFAw0DMwslAwtTTVMzI2UjA0MDRQSC7iCuQCAGOtBdUK
--inner-b--

--outer-b--
""")

EMPTY_PARTS = crlf("""\
From: empty@example.com
Subject: empty parts
Date: Fri, 5 Mar 2004 12:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="e"

--e
Content-Type: text/plain

--e
Content-Type: text/plain; charset=us-ascii

one line

--e
Content-Type: text/html


--e
Content-Type: application/octet-stream

--e--
""")

EMPTY_SHAPES = crlf("""\
From: empty@example.com
Subject: more empty shapes
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="e"

--e

--e
--e
Content-Type: text/plain



--e
Content-Type: multipart/mixed; boundary="x"

--e
Content-Type: message/rfc822

--e--
""")

MAILER_MIX = crlf("""\
Return-Path: <bounce@example.org>
From: "Doe, John" <john@example.com>
To: undisclosed-recipients:;
Cc: =?utf-8?B?SsO2cmc=?= <joerg@example.de>, x@example.org (X. (Ray) Man)
Subject: =?utf-8?Q?Re=3A_R=C3=A9sum=C3=A9?=
Date: Tue, 9 Mar 2004 08:00:00 -0800 (PST)
MIME-Version: 1.0
Content-Type: multipart/mixed;
	boundary="----=_NextPart_000_0001_01C40000.ABCDEF00"

This is a multi-part message in MIME format.

------=_NextPart_000_0001_01C40000.ABCDEF00
Content-Type: text/plain;
	charset="us-ascii"
Content-Transfer-Encoding: Quoted-Printable

Hello=20
there

------=_NextPart_000_0001_01C40000.ABCDEF00
Content-Type: application/pdf; name="Resume.pdf"
Content-Disposition: attachment;
 filename="Resume.pdf"
Content-Transfer-Encoding: base64

JVBERi0=

------=_NextPart_000_0001_01C40000.ABCDEF00--

""")

EMPTY_BODY = crlf("""\
From: nobody@example.com
Subject: empty body
Date: Fri, 5 Mar 2004 12:00:00 +0000

""")

HEADER_ONLY = crlf("""\
From: nobody@example.com
Subject: a header and no blank line
""")

UNCLOSED = crlf("""\
From: unclosed@example.com
Subject: the closing boundary is missing
Date: Sat, 6 Mar 2004 08:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="zz"

--zz
Content-Type: text/plain

first part

--zz
Content-Type: text/plain

second part, and the message ends without the closing delimiter
""")

UNCLOSED_NESTED = crlf("""\
From: unclosed@example.com
Subject: an inner multipart never closes
Date: Sat, 6 Mar 2004 08:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="out"

--out
Content-Type: multipart/alternative; boundary="in"

--in
Content-Type: text/plain

plain

--out
Content-Type: text/plain

after the inner one

--out--
""")

BAD_CONTENT_TYPES = crlf("""\
From: badct@example.com
Subject: content types that do not parse
Date: Sun, 7 Mar 2004 08:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="bb"

--bb
Content-Type: text

no subtype

--bb
Content-Type: /plain

no type

--bb
Content-Type: ; charset=utf-8

nothing before the parameters

--bb
Content-Type: te xt/pl ain

spaces

--bb
Content-Type: image/png; name="unterminated

unterminated parameter

--bb
Content-Type: multipart/mixed

a multipart without a boundary

--bb--
""")

NO_BOUNDARY_TOP = crlf("""\
From: badct@example.com
Subject: multipart without boundary at the top
MIME-Version: 1.0
Content-Type: multipart/mixed

--x
Content-Type: text/plain

not a part
--x--
""")

GARBAGE_TOP_TYPE = crlf("""\
From: badct@example.com
Subject: garbage content type at the top
MIME-Version: 1.0
Content-Type: garbage

body
""")

DIGEST = crlf("""\
From: digest@example.com
Subject: a digest
Date: Mon, 8 Mar 2004 08:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/digest; boundary="d"

--d

From: one@example.com (One Person)
Subject: first

first body

--d
Content-Type: text/plain

not a message

--d--
""")

RFC822_TOP = crlf("""\
From: outer@example.com
Date: Mon, 8 Mar 2004 08:00:00 +0000
MIME-Version: 1.0
Content-Type: message/rfc822

From: inner@example.com (Inner Name)
Subject: inside
Content-Type: multipart/mixed; boundary="q"

--q
Content-Type: text/plain

part one

--q
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 =
soft

--q--
""")

ENCODED_RFC822 = crlf("""\
From: enc@example.com
Subject: a base64 message/rfc822
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="m"

--m
Content-Type: text/plain

see attached

--m
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

RnJvbTogeEB5DQpTdWJqZWN0OiBoaWRkZW4NCg0KYm9keQ0K

--m--
""")

QP_AND_NO_FINAL_CRLF = crlf("""\
From: qp@example.com
Subject: quoted-printable
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="p"

--p
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

hello  =20
soft=
 break =3D sign=0D=0A
trailing=

--p
Content-Type: application/octet-stream; name="file16.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="file16.bin"

AAECAwQFBgcICQ==
--p--
""").rstrip(b"\r\n")

RELATED = crlf("""\
From: "HTML Sender" <html@example.com>
To: "Group": a@example.com, b@example.com (Bee);
Subject: related
MIME-Version: 1.0
Content-Type: multipart/related; boundary="r"; type="multipart/alternative"

--r
Content-Type: multipart/alternative; boundary="a"

--a
Content-Type: text/plain; charset=utf-8; format=flowed
Content-Language: en, de

text

--a
Content-Type: text/html; charset=utf-8
Content-ID: <html@example.com>
Content-Description: the html
Content-Location: http://example.com/x.html

<img src="cid:img@example.com">

--a--
--r
Content-Type: image/gif
Content-Transfer-Encoding: base64
Content-ID: <img@example.com>
Content-Disposition: inline

R0lGODlhAQABAAAAACw=
--r--
""")

# Where Letterbox answers as Dovecot does, every section. (Their text parts end with a
# line end before the boundary: for a last line without one, Letterbox counts it and
# Dovecot does not, a difference crates/imap/src/lib.rs lists.)
SAME_AS_DOVECOT = [
    COMMENT_NAMES,
    FORWARD,
    EMPTY_PARTS,
    EMPTY_SHAPES,
    MAILER_MIX,
    EMPTY_BODY,
    HEADER_ONLY,
    UNCLOSED,
    UNCLOSED_NESTED,
    DIGEST,
    RFC822_TOP,
    QP_AND_NO_FINAL_CRLF,
    RELATED,
]

# Where Letterbox follows the RFC and Dovecot does not (crates/message/src/lib.rs says
# why): test_imap_mime_dovecot.py checks Letterbox's own answers for these.
DELIBERATE = [
    BAD_CONTENT_TYPES,
    NO_BOUNDARY_TOP,
    GARBAGE_TOP_TYPE,
    ENCODED_RFC822,
]
