"""The FIU's own workflow: themes (saved queries) over unusual-transaction reports, screening into ranked subjects
and networks, decisions, and dissemination to investigative services and route-country FIUs."""
