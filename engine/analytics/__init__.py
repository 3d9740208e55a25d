"""The analytics wing (room for the dashboards): live aggregates of what the cases wing commits, counts
by area x category x time bucket, trends, heatmaps and KPIs. Reads the cases wing and the shared
modules; the alerts wing reads its counts.
"""
