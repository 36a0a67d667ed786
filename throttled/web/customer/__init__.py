"""The customer's own page, ``/app`` on the public listener: a HubSpot user signs in through
the app's OAuth (``sign_in.py``), gets a signed session cookie (``session.py``), and sees and
steers their portal's throttles (``views.py`` reads, ``render.py`` writes the HTML,
``routes.py`` serves it). See ``docs/customer-page.md``.

Nothing is imported here: ``web/oauth_routes.py`` imports ``sign_in`` and ``web/app.py``
imports ``routes``, which imports ``oauth_routes`` back.
"""
