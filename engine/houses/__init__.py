"""The houses wing: buildings, units, their codes and QR payloads, addresses, nearest-building lookups.

一楼一码、一房一码: every building and every unit (dwelling, shop, workshop, office) has a code
(:mod:`.codes`) that a signed QR payload on its door plate names; :mod:`.rentals` declares unit
kinds, rental classes and control levels (出租屋分类分级) and the group-renting (群租) rule;
addresses are normalised and searched in :mod:`.address`; :mod:`.spatial` finds the nearest
building to points. The registry builds on these: :mod:`.store` (its tables), :mod:`.census` (counts
in memory), :mod:`.loading` (Parquet bulk load checks), :mod:`.registry` (buildings, units, lookups,
re-grid; its loads in :mod:`.bulk_load`, its people in :mod:`.residence`, local dates in
:mod:`.dates`), :mod:`.privacy`, :mod:`.checkins` and :mod:`.service` (the engine API a
``HouseService`` servicer translates).
"""
