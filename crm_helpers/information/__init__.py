"""Information: one customer view and the numbers a manager can quote.

``standardise`` and ``identity`` turn staged records into customers, ``star`` builds and reads the
star schema, ``integrate`` runs those steps; ``kpis``, ``rfm``, ``cohorts`` and ``olap`` analyse the
result; ``cdnow`` serves the CDNOW benchmark data in the same shape.
"""
