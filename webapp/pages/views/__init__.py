"""The browser pages: accounts, the new-job form, job pages and their JSON status, owner-only files.

Every view but sign-up and log-in needs a logged-in person, and every job or image
is looked up among that person's own (common.own_job / own_image): anyone else's
is a 404, exactly as if it did not exist.
"""
