"""shancheng.contracts"""
