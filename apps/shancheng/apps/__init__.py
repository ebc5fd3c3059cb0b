"""shancheng.apps"""
