"""The simulators: KORM SS over REST (``korm``), KSS 3.0 over SOAP and REST (``kss``), the control plane (``admin``)
and what they share (``core``), served as one WSGI app (``app.create_app``)."""
