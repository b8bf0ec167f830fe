"""Closedloop: closed-loop marketing attribution, self-hosted on AWS.

The shared package of every Lambda function (shipped as the common layer) and of the local stack.
Domain modules (``channels``, ``traffic``, ``sessions``, ``attribution`` ...) are plain Python with no
AWS calls; ``store`` is the only module that talks to DynamoDB.
"""

__version__ = "0.1.0"
