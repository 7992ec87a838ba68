# host_project/ is a template copied into a temporary folder by test_wheel_install.py, never collected here.
collect_ignore = ["host_project"]
